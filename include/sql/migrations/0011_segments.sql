-- Customer segments (CONTRACT §6): every decision carries its segment, and whether its late fee
-- is shown as waived (a relief scheme); the segment rules read payments by account and date.
ALTER TABLE decisions ADD COLUMN segment TEXT NOT NULL DEFAULT 'new';
ALTER TABLE decisions ADD COLUMN late_fee_waived INTEGER NOT NULL DEFAULT 0;
CREATE INDEX payments_account_paid ON payments (account_id, paid_on);

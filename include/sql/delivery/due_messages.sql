-- D's decisions that carry a message on at least one channel, with the holder's own contact
-- details as delivered for D (never anyone else's).
-- The channels' address columns follow the fixed ones (arrears.delivery.outbox reads them by name).
SELECT d.account_id, d.actions, d.message_kinds, d.dpd, d.outstanding_fen, d.late_fee_fen,
       d.disconnection_earliest, d.stage, d.holds, a.holder_name, a.language, a.service_address, a.email,
       a.mobile, a.wechat_openid, a.app_user_id, d.segment, d.late_fee_waived
FROM decisions d
JOIN extract_accounts a ON a.cycle_date = d.cycle_date AND a.account_id = d.account_id
WHERE d.cycle_date = :d AND d.message_kinds <> ''
ORDER BY d.account_id COLLATE BINARY;

-- Serve a notice to every account whose decision of D says disconnection_notice.
INSERT INTO disconnection_notices (notice_id, account_id, served_on, earliest_disconnection)
VALUES (:notice_id, :account_id, :served_on, :earliest)
ON CONFLICT (notice_id) DO NOTHING;

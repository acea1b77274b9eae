-- The accounts of D's extract in one part, lo (inclusive) to hi (exclusive; NULL: no upper end).
SELECT account_id, holder_name, customer_class, service_address, email, mobile, language,
       protections, opt_out, wechat_openid, app_user_id
FROM extract_accounts
WHERE cycle_date = :d AND account_id >= :lo COLLATE BINARY
  AND (CAST(:hi AS TEXT) IS NULL OR account_id < :hi COLLATE BINARY)
ORDER BY account_id COLLATE BINARY;

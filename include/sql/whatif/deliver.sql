-- The what-if's delivery model: every message its decisions of D ask for is recorded in the
-- scratch outbox as sent (nobody is contacted), except where the real message of the same key
-- failed for good, which fails here too. Runs on the scratch database only (SQLite).
INSERT INTO outbox (idem_key, cycle_date, account_id, channel, address, language, kinds, template,
                    template_version, body_text, content_sha256, message_id, status, attempts,
                    queued_at, sent_at, run_id, task_id)
SELECT d.cycle_date || ':' || d.account_id || ':' || c.channel, d.cycle_date, d.account_id,
       c.channel, CASE c.channel WHEN 'email' THEN a.email WHEN 'sms' THEN a.mobile
                                 WHEN 'voice' THEN a.mobile WHEN 'wechat' THEN a.wechat_openid
                                 WHEN 'push' THEN a.app_user_id ELSE a.service_address END,
       a.language, d.message_kinds, 'whatif', 'whatif', '', '',
       'whatif:' || d.cycle_date || ':' || d.account_id || ':' || c.channel,
       CASE WHEN r.status = 'permanent_failure' THEN 'permanent_failure' ELSE 'sent' END, 1,
       :stamp, :stamp, :run_id, 'whatif'
FROM decisions d
JOIN extract_accounts a ON a.cycle_date = d.cycle_date AND a.account_id = d.account_id
JOIN decision_actions x ON x.cycle_date = d.cycle_date AND x.account_id = d.account_id
JOIN whatif_channels c ON c.channel = x.action
LEFT JOIN whatif_real_outcomes r
       ON r.idem_key = d.cycle_date || ':' || d.account_id || ':' || c.channel
WHERE d.cycle_date = :d
ON CONFLICT (idem_key) DO NOTHING;

-- What earlier non-replay cycles decided, one row per account of D's extract and earlier date
-- that matters: the latest decision (for the stage spell), and the decisions that issued a
-- pre-notice, a disconnection notice, a lawyer letter or a credit report. (Messages and service
-- come from what happened: cycle/what_happened.sql.)
SELECT d.account_id, d.cycle_date, d.stage, d.stage_entered_on, d.actions
FROM decisions d JOIN extract_accounts a ON a.account_id = d.account_id AND a.cycle_date = :d
WHERE d.replay = 0 AND d.cycle_date < :d
  AND a.account_id >= :lo COLLATE BINARY
  AND (CAST(:hi AS TEXT) IS NULL OR a.account_id < :hi COLLATE BINARY)
  AND (EXISTS (SELECT 1 FROM decision_actions x
               WHERE x.cycle_date = d.cycle_date AND x.account_id = d.account_id
                 AND x.action IN ('credit_prenotice', 'disconnection_notice', 'lawyer_letter',
                                  'credit_report'))
       OR d.cycle_date = (SELECT MAX(p.cycle_date) FROM decisions p
                          WHERE p.account_id = d.account_id AND p.replay = 0 AND p.cycle_date < :d))
ORDER BY d.account_id COLLATE BINARY, d.cycle_date;

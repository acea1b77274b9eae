-- What earlier non-replay cycles decided, one row per account of D's extract and earlier date
-- that matters: the latest decision (for the stage spell), and the decisions that issued a
-- pre-notice, a disconnection notice, a lawyer letter or a credit report. (Messages and service
-- come from what happened: cycle/what_happened.sql.)
-- Two look-ups per account, never a scan of all its earlier decisions: the latest decision (the
-- index decisions_account finds its date) and the decisions that carry one of the four actions
-- (decision_actions: a few rows a month). Testing every earlier decision for "is it the latest"
-- made a year-old book cost 45x a week-old one (README: Benchmarks).
SELECT h.account_id, h.cycle_date, h.stage, h.stage_entered_on, h.actions FROM (
    SELECT d.account_id, d.cycle_date, d.stage, d.stage_entered_on, d.actions
    FROM (SELECT a.account_id,
                 (SELECT MAX(p.cycle_date) FROM decisions p
                  WHERE p.account_id = a.account_id AND p.replay = 0 AND p.cycle_date < :d) AS latest
          FROM extract_accounts a
          WHERE a.cycle_date = :d
            AND a.account_id >= :lo COLLATE BINARY
            AND (CAST(:hi AS TEXT) IS NULL OR a.account_id < :hi COLLATE BINARY)) l
    JOIN decisions d ON d.cycle_date = l.latest AND d.account_id = l.account_id
    UNION
    SELECT d.account_id, d.cycle_date, d.stage, d.stage_entered_on, d.actions
    FROM decision_actions x
    JOIN extract_accounts a ON a.account_id = x.account_id AND a.cycle_date = :d
    JOIN decisions d ON d.cycle_date = x.cycle_date AND d.account_id = x.account_id
     AND d.replay = 0
    WHERE x.action IN ('credit_prenotice', 'disconnection_notice', 'lawyer_letter', 'credit_report')
      AND x.cycle_date < :d
      AND a.account_id >= :lo COLLATE BINARY
      AND (CAST(:hi AS TEXT) IS NULL OR a.account_id < :hi COLLATE BINARY)
) h
ORDER BY h.account_id COLLATE BINARY, h.cycle_date;

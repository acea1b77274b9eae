-- What earlier real cycles decided, read from decision_state (arrears.cycle.state) instead of
-- cycle/history.sql when the state holds every date before D: the same columns, one row per
-- account of D's extract and action it ever took (its latest date), then the latest decision
-- (last, with no action: it gives the stage spell). At most five rows per account whatever the
-- book's age.
SELECT h.account_id, h.cycle_date, h.stage, h.stage_entered_on, h.actions FROM (
    SELECT s.account_id,
           CASE k.column1 WHEN 1 THEN s.last_credit_prenotice
                          WHEN 2 THEN s.last_disconnection_notice
                          WHEN 3 THEN s.last_lawyer_letter
                          WHEN 4 THEN s.last_credit_report
                          ELSE s.stage_entered_on END AS cycle_date,
           s.stage, s.stage_entered_on, k.column2 AS actions, k.column1 AS k
    FROM extract_accounts a
    JOIN decision_state s ON s.account_id = a.account_id
    CROSS JOIN (VALUES (1, 'credit_prenotice'), (2, 'disconnection_notice'),
                       (3, 'lawyer_letter'), (4, 'credit_report'), (5, '')) k
    WHERE a.cycle_date = :d
      AND a.account_id >= :lo COLLATE BINARY
      AND (CAST(:hi AS TEXT) IS NULL OR a.account_id < :hi COLLATE BINARY)
) h
WHERE h.cycle_date IS NOT NULL
ORDER BY h.account_id COLLATE BINARY, h.k;

-- Case events known as of D (first delivered on or before D) for the accounts of D's extract.
SELECT e.account_id, e.event_id, e.event_type, e.effective_date, e.amount_fen, e.until_date,
       e.note, e.instalments
FROM case_events e JOIN extract_accounts a ON a.account_id = e.account_id AND a.cycle_date = :d
WHERE e.first_seen <= :d
  AND a.account_id >= :lo COLLATE BINARY
  AND (CAST(:hi AS TEXT) IS NULL OR a.account_id < :hi COLLATE BINARY)
ORDER BY e.account_id COLLATE BINARY, e.effective_date, e.event_id;

-- Accounts whose decision on D carries the given action (call_list or field_visit), with what
-- an agent needs on the phone or at the door.
SELECT d.account_id, a.holder_name, a.mobile, a.service_address, a.language, a.protections,
       d.stage, d.dpd, d.outstanding_fen, d.late_fee_fen, d.actions, d.holds,
       d.serve_in_person, d.notice_pending,
       (SELECT MIN(s.due_date) FROM staged_bills s
        WHERE s.cycle_date = d.cycle_date AND s.account_id = d.account_id AND s.open_fen > 0),
       d.segment, d.late_fee_waived
FROM {decisions} d JOIN extract_accounts a ON a.cycle_date = d.cycle_date AND a.account_id = d.account_id
WHERE d.cycle_date = :d
  AND EXISTS (SELECT 1 FROM {decision_actions} x
              WHERE x.cycle_date = d.cycle_date AND x.account_id = d.account_id AND x.action = :action)
ORDER BY d.account_id COLLATE BINARY;

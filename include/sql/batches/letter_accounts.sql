-- Accounts whose decision on D includes a lawyer letter, with what the letter shows.
SELECT d.account_id, a.holder_name, a.service_address, a.language, d.dpd, d.outstanding_fen,
       d.late_fee_fen, d.late_fee_waived
FROM {decisions} d JOIN extract_accounts a ON a.cycle_date = d.cycle_date AND a.account_id = d.account_id
WHERE d.cycle_date = :d
  AND EXISTS (SELECT 1 FROM {decision_actions} x
              WHERE x.cycle_date = d.cycle_date AND x.account_id = d.account_id
                AND x.action = 'lawyer_letter')
ORDER BY d.account_id COLLATE BINARY;

-- The stage transitions into cycle date D from the cycle date before it: per experiment and
-- arm, the stage on the earlier date and on D ('gone': not in D's extract).
SELECT a.experiment_id, a.arm, a.stage, COALESCE(b.stage, 'gone') AS next_stage, COUNT(*) AS accounts
FROM decisions a
LEFT JOIN decisions b ON b.cycle_date = :d AND b.account_id = a.account_id AND b.replay = 0
WHERE a.replay = 0 AND a.stage <> 'current'
  AND a.cycle_date = (SELECT MAX(p.cycle_date) FROM decisions p WHERE p.replay = 0 AND p.cycle_date < :d)
GROUP BY a.experiment_id, a.arm, a.stage, COALESCE(b.stage, 'gone');

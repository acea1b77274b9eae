-- Stage transitions between consecutive cycle dates whose later date lies in [start, d]:
-- per arm, the stage on the earlier date and on the later one ('gone': left the extract).
-- A NULL experiment counts every decision; else only those made under that experiment.
WITH dates AS (
    SELECT DISTINCT cycle_date FROM decisions WHERE replay = 0 AND cycle_date <= :d
),
pairs AS (
    SELECT n.cycle_date AS later,
           (SELECT MAX(p.cycle_date) FROM dates p WHERE p.cycle_date < n.cycle_date) AS earlier
    FROM dates n WHERE n.cycle_date >= :start
)
SELECT a.arm, a.stage, COALESCE(b.stage, 'gone') AS next_stage, COUNT(*) AS accounts
FROM pairs
JOIN decisions a ON a.cycle_date = pairs.earlier AND a.replay = 0
LEFT JOIN decisions b ON b.cycle_date = pairs.later AND b.account_id = a.account_id AND b.replay = 0
WHERE a.stage <> 'current'
  AND (CAST(:experiment AS TEXT) IS NULL OR a.experiment_id = :experiment)
GROUP BY a.arm, a.stage, COALESCE(b.stage, 'gone')
ORDER BY a.arm, a.stage, next_stage;

-- A replay's decisions of D against the real ones, action by action: the accounts whose replay
-- decision has an action the real one has not ('added') and the other way round ('removed').
SELECT x.action, 'added', x.account_id
FROM replay_decision_actions x
WHERE x.run_id = :run_id AND x.cycle_date = :d
  AND NOT EXISTS (SELECT 1 FROM decision_actions r WHERE r.cycle_date = x.cycle_date
                  AND r.account_id = x.account_id AND r.action = x.action)
UNION ALL
SELECT r.action, 'removed', r.account_id
FROM decision_actions r
WHERE r.cycle_date = :d
  AND NOT EXISTS (SELECT 1 FROM replay_decision_actions x WHERE x.run_id = :run_id
                  AND x.cycle_date = r.cycle_date AND x.account_id = r.account_id
                  AND x.action = r.action);

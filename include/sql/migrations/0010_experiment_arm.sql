-- Champion/challenger (CONTRACT §5): the experiment and arm each decision was made under.
-- Blank when no experiment ran; policy_version (already on every row) names the policy of the arm.
ALTER TABLE decisions ADD COLUMN experiment_id TEXT NOT NULL DEFAULT '';
ALTER TABLE decisions ADD COLUMN arm TEXT NOT NULL DEFAULT '';

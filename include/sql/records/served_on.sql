-- The disconnection notices served (delivered or in person) on D, for disconnection/notices.csv.
SELECT account_id, notice_id, served_on, earliest_disconnection
FROM disconnection_notices WHERE served_on = :d
ORDER BY account_id COLLATE BINARY, notice_id COLLATE BINARY;

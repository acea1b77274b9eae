-- Raw quarantined rows dated on or before the cut-off that still hold the row as delivered.
SELECT cycle_date, file, line, raw FROM quarantine
WHERE cycle_date <= :cutoff AND raw NOT LIKE 'sha256:%'
ORDER BY cycle_date, file, line;

-- The latest cycle date whose bills are staged, between the batch date and the release date.
SELECT MAX(cycle_date) FROM staged_bills WHERE cycle_date >= :batch AND cycle_date <= :r;

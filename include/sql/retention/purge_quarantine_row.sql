UPDATE quarantine SET raw = :raw
WHERE cycle_date = :cycle_date AND file = :file AND line = :line;

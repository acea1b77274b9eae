"""Operations: the record of each cycle run, deadline alerts and failure notifications."""

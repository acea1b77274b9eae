"""The record of what happened: notices served (delivered or in person), addresses that failed
for good, and replays kept apart from the real record."""

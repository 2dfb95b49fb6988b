"""MLflow, as a sweep writes it: the tracker (`tracker`: one parent run per sweep, one child run per trial and donor,
retries and the offline switch), the trackers this process runs (`active`), and the replay of a sweep's stored
results into MLflow (`backfill`). Nothing outside this package talks to MLflow's tracking API."""

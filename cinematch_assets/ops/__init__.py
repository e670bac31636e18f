"""Operations around the pipeline, not part of it: finding (or fetching) Java, a local
Spark standalone cluster, `make demo`'s servers and `make preflight`."""

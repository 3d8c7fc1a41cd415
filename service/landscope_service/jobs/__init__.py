"""Job kinds (name -> options schema -> runner) and the job store."""

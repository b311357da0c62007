"""The packaged model and what runs it: the serving contract and scoring path, the pyfunc's code, the scoring
server's log filter, the batch command (pneumonia-predict) and its Spark engine."""

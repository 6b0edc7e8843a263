"""churnops: the library every stage, pipeline, server and command shares."""

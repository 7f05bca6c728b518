"""An offline GenEval for the embedded Animal scenes, and the files the real GenEval reads and writes."""

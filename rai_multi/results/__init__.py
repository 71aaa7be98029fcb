"""Reading finished runs and comparing them: shared by the report and the gate (the gate
does not import the report)."""

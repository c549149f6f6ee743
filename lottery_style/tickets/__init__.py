"""What a ticket and a run are on disk: every file name (:mod:`.paths`), the rounds' storage, the ticket
file format (safetensors), the run summary and matching verdict, the run's identity, and opening a ticket as a model."""

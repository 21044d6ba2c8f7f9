"""SummaryWriter's public methods, a module per family of summaries (the writer inherits them)."""

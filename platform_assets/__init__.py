"""Bronze-layer ingestion assets and the engine behind them."""

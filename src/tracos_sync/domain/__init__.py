"""The TracOS work-order domain: model, dates, errors and ports. Imports nothing else of ours."""

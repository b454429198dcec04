"""The bottom layer: record type, chat contract, typed requests/results, file helpers. No torch here."""

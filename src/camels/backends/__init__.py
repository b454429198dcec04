"""Model backends: batches of typed requests in, results out, in order. A backend never knows a task."""

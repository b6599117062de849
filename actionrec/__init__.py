"""The library of the action-recognition study: data, models, engine, evaluation, reporting, inference, flow."""

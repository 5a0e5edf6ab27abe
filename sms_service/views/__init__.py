"""HTTP views (Flask blueprints). Thin: parse, call a service function, answer."""

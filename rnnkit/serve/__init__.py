"""``rnnkit serve``: trained runs over HTTP, with a web page (``pip install "rnnkit[serve]"``).

    rnnkit serve runs/demo reverse=runs/reverse --port 8000
    curl -s localhost:8000/v1/generate -d '{"prompt": "ROMEO:", "max_new_tokens": 40}'

- ``app``: the FastAPI application, its routes and error envelope; the tasks' endpoints join it;
- ``endpoints``: what a task adds (``Endpoint``: a body, a response, a batch runner);
- ``schemas``: the typed requests and responses every endpoint shares;
- ``limits``: every cap, with its default;
- ``batcher``: batching across requests, off the event loop;
- ``middleware``: the access log and the request body cap;
- ``workflows/serve.py``: the process: uvicorn, logging, and a drain on SIGTERM;
- ``static/``: the web page (HTML, CSS, JS; no build step, no CDN).
"""

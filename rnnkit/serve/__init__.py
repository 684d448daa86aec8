"""``rnnkit serve``: trained runs over HTTP, with a web page (``pip install "rnnkit[serve]"``).

    rnnkit serve runs/demo reverse=runs/reverse --port 8000
    curl -s localhost:8000/v1/generate -d '{"prompt": "ROMEO:", "max_new_tokens": 40}'

- ``app``: the FastAPI application, its endpoints and error envelope;
- ``schemas``: the typed requests and responses;
- ``limits``: every cap, with its default;
- ``batcher``: batching across requests, off the event loop;
- ``runners``: a batch of requests as one call to ``rnnkit.load``'s methods;
- ``middleware``: the access log and the request body cap;
- ``server``: the process: uvicorn, logging, and a drain on SIGTERM;
- ``static/``: the web page (HTML, CSS, JS; no build step, no CDN).
"""

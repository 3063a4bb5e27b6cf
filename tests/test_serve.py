"""`asr serve`: started on a free local port, called over HTTP as a web page or a service would."""
import json
import re
import socket
import threading
import time
import urllib.error
import urllib.request
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from asr.decoding import GreedyDecoder
from asr.recognizer import BUILTIN_DIR, load_recognizer

SAMPLES = BUILTIN_DIR / "samples"
FIXTURE = Path(__file__).parent / "data" / "an4"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(limits):
    import uvicorn

    from asr.serve import create_app

    recognizer = load_recognizer()
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(recognizer, GreedyDecoder(recognizer.tokenizer), limits),
                                           host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    for _ in range(200):
        if server.started:
            break
        time.sleep(0.05)
    return server, thread, f"http://127.0.0.1:{port}"


@pytest.fixture(scope="module")
def service():
    from asr.serve import Limits

    server, thread, url = start(Limits(max_upload_mb=1.0, max_audio_seconds=30.0, workers=1, queue=3))
    yield url
    server.should_exit = True
    thread.join(10)


def post(url: str, data: bytes, name: str = "clip.flac") -> tuple[int, dict, dict]:
    boundary = uuid.uuid4().hex
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{name}\"\r\n"
            "Content-Type: application/octet-stream\r\n\r\n").encode() + data + f"\r\n--{boundary}--\r\n".encode()
    request = urllib.request.Request(url + "/transcribe", body, {"Content-Type": f"multipart/form-data; boundary={boundary}"})
    try:
        with urllib.request.urlopen(request, timeout=60) as reply:
            return reply.status, json.loads(reply.read()), dict(reply.headers)
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read()), dict(error.headers)


def test_an_uploaded_clip_gets_its_transcript_with_word_times(service):
    status, body, _ = post(service, (SAMPLES / "an417-fjlp-b.flac").read_bytes())
    assert status == 200 and body["text"] == "ENTER NINE ONE SIX NINE"
    words = [w for s in body["segments"] for w in s["words"]]
    assert [w["word"] for w in words] == body["text"].split()
    assert all(0 <= w["start"] < w["end"] <= body["duration"] and 0 <= w["confidence"] <= 1 for w in words)
    page = urllib.request.urlopen(service + "/", timeout=10).read().decode()
    assert "<h1>Transcribe</h1>" in page and 'fetch("transcribe"' in page


def test_bad_uploads_get_a_4xx_with_a_one_line_reason(service):
    status, body, _ = post(service, b"this is not audio" * 10, "notes.wav")
    assert status == 400 and body["error"] == "notes.wav: unreadable audio (Format not recognised.)"
    status, body, _ = post(service, b"\0" * (1024 * 1024 + 10), "big.wav")
    assert status == 413 and body["error"] == "upload larger than 1 MB"
    status, body, _ = post(service, (SAMPLES / "cen6-fjlp-b.flac").read_bytes(), "../../etc/passwd")
    assert status == 200  # the name is never a path: the upload stays in memory


def announce(url: str, length: int) -> str:
    """An upload of `length` bytes announced, its body never sent (the client waits for the
    go-ahead, as curl does): the service's whole answer, headers and body."""
    with socket.create_connection(("127.0.0.1", int(url.rsplit(":", 1)[1])), timeout=10) as conn:
        conn.sendall(b"POST /transcribe HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=b\r\n"
                     b"Content-Length: %d\r\nExpect: 100-continue\r\n\r\n" % length)
        reply = b""
        while b"\r\n\r\n" not in reply or len(reply.partition(b"\r\n\r\n")[2]) < int(
                re.search(rb"(?i)content-length: (\d+)", reply).group(1)):
            reply += conn.recv(4096)
    return reply.decode()


def test_a_body_over_the_limit_is_refused_before_it_is_sent(service):
    reply = announce(service, 100 * 2**20)  # the 413 must come from the headers alone
    assert reply.startswith("HTTP/1.1 413") and reply.endswith('{"error":"upload larger than 1 MB"}')


def test_a_chunked_body_past_the_limit_gets_a_413_not_a_reset(service):
    chunks = (b"--b\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.wav\"\r\n\r\n",
              *[b"\0" * 65536] * 40)  # 2.5 MB with no Content-Length, sent without waiting
    request = urllib.request.Request(service + "/transcribe", iter(chunks),
                                     {"Content-Type": "multipart/form-data; boundary=b", "Transfer-Encoding": "chunked"})
    try:
        urllib.request.urlopen(request, timeout=30)
        status = 200
    except urllib.error.HTTPError as error:
        status, body = error.code, json.loads(error.read())
    assert status == 413 and body["error"] == "upload larger than 1 MB"


def test_a_busy_service_answers_503_before_it_reads_the_upload():
    # the queue is full: a request must not get as far as holding its body in memory
    from asr.serve import Limits

    server, thread, url = start(Limits(max_upload_mb=1.0, workers=1, queue=0))
    try:
        gate = server.config.app.state.gate
        gate.admitted = 1  # one transcription under way, no room to wait
        reply = announce(url, 500000)
        assert reply.startswith("HTTP/1.1 503") and "retry-after: 2" in reply.lower()
        status, body, _ = post(url, (SAMPLES / "cen6-fjlp-b.flac").read_bytes())  # sent whole: still a clean 503
        assert status == 503 and body["error"].startswith("busy: 1 transcribing and 0 waiting")
        assert gate.admitted == 1
        gate.admitted = 0
        assert post(url, (SAMPLES / "cen6-fjlp-b.flac").read_bytes())[0] == 200
        for _ in range(100):  # the request leaves the gate just after its answer is sent
            if gate.admitted == 0:
                break
            time.sleep(0.02)
        assert gate.admitted == 0
    finally:
        server.should_exit = True
        thread.join(10)


def test_twenty_concurrent_uploads_get_a_transcript_or_a_clear_503(service):
    clips = sorted(FIXTURE.glob("*.flac")) + sorted(SAMPLES.glob("*.flac"))
    texts = dict(line.split(" ", 1) for line in (FIXTURE / "text").read_text().splitlines())
    texts.update(line.split(" ", 1) for line in (SAMPLES / "text").read_text().splitlines())
    jobs = [clips[i % len(clips)] for i in range(20)]
    with ThreadPoolExecutor(20) as pool:
        replies = list(pool.map(lambda p: (p, *post(service, p.read_bytes(), p.name)), jobs))
    ok = [(p, body) for p, status, body, _ in replies if status == 200]
    busy = [(body, headers) for _, status, body, headers in replies if status == 503]
    assert len(ok) + len(busy) == 20 and ok and busy  # 1 worker + 3 waiting: some must be turned away
    assert all(body["error"].startswith("busy:") and headers.get("retry-after") == "2" for body, headers in busy)
    greedy = {p.stem: body["text"] for p, body in ok}
    recognizer = load_recognizer()
    for stem, text in greedy.items():  # each reply is its own clip's transcript, not a neighbour's
        assert text == recognizer.transcribe(str(next(c for c in clips if c.stem == stem))).text, stem
    assert set(greedy) <= set(texts)
    health = json.loads(urllib.request.urlopen(service + "/health", timeout=10).read())
    assert health["status"] == "ok" and health["admitted"] == 0  # still up, nothing left admitted

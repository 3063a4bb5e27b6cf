"""`asr serve`: a small HTTP transcription service (FastAPI on uvicorn; `pip install -e ".[serve]"`).

- `GET /` serves one web page: upload a file or record from the microphone, then see the text with
  its word times and confidences, the word being spoken highlighted as the audio plays.
- `POST /transcribe` takes an audio file (multipart field `file`) and answers the JSON of
  `asr transcribe --format json` plus `duration`.
- `GET /health` says the service is up and how busy it is.

Limits: `workers` transcriptions at a time and at most `queue` more waiting, counted from the
moment a request arrives: past that it gets 503 with `Retry-After` before its upload is read, so
that no more than `workers + queue` uploads are ever held in memory; the upload's size (413 before
the form is parsed); the audio's length (413). A refused client that announced its upload and
waits for the go-ahead, as curl does, is answered before it sends it. A file that is not audio
gets 400 with a one-line reason. The audio is decoded from memory (Starlette may spool a part over
1 MB to an anonymous temporary file first); nothing from a request reaches a shell or a file path.
It binds to 127.0.0.1 unless told otherwise.
"""
import asyncio
import threading
from dataclasses import asdict, dataclass
from pathlib import Path

from fastapi import FastAPI, File, HTTPException, UploadFile  # the [serve] extra
from fastapi.responses import HTMLResponse, JSONResponse

from asr.audio import AudioError, load_audio_bytes

PAGE = Path(__file__).parent / "assets" / "serve" / "index.html"


@dataclass(frozen=True)
class Limits:
    max_upload_mb: float = 20.0
    max_audio_seconds: float = 600.0
    workers: int = 1  # transcriptions at a time (each uses the recogniser's threads)
    queue: int = 8  # requests that may wait for a worker; more get 503


class _Gate:
    """Admission: at most `workers` running and `queue` waiting; the rest are turned away."""

    def __init__(self, limits: Limits):
        self.limits = limits
        self.lock = threading.Lock()
        self.admitted = 0
        self.running = asyncio.Semaphore(limits.workers)

    def enter(self) -> bool:
        with self.lock:
            if self.admitted >= self.limits.workers + self.limits.queue:
                return False
            self.admitted += 1
            return True

    def leave(self) -> None:
        with self.lock:
            self.admitted -= 1


class _Admission:
    """ASGI middleware in front of `POST /transcribe`: admission and the upload's size, before the
    form is parsed. At most `workers + queue` requests hold a body in memory; the next gets 503 at
    once. A body over `max_bytes` gets 413. A refused client that announced its body and waits
    (`Expect: 100-continue`, as curl does) is answered before it sends it; one that is still
    sending has the rest read and dropped, so that it gets its answer rather than a reset."""

    def __init__(self, app, gate: _Gate, max_bytes: int, too_large: str, busy: str):
        self.app, self.gate, self.max_bytes, self.too_large, self.busy = app, gate, max_bytes, too_large, busy

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["method"] != "POST" or not scope["path"].endswith("/transcribe"):
            return await self.app(scope, receive, send)
        headers = dict(scope["headers"])
        length = headers.get(b"content-length", b"")
        waits = headers.get(b"expect", b"").lower() == b"100-continue"
        admitted = self.gate.enter()
        try:
            if not admitted or (length.isdigit() and int(length) > self.max_bytes):
                if waits or await self._read(receive, keep=False) is not None:
                    await self._refuse(scope, receive, send, admitted)
                return
            body = await self._read(receive, keep=True)
            if body is None:  # the client went away
                return
            messages, size = body
            if size > self.max_bytes:
                return await self._refuse(scope, receive, send, admitted)
            queued = iter(messages)

            async def replay():
                return next(queued, None) or await receive()

            await self.app(scope, replay, send)
        finally:
            if admitted:
                self.gate.leave()

    async def _read(self, receive, keep: bool) -> tuple[list, int] | None:
        """The body to its end: its messages while it is within `max_bytes` (when `keep`; the rest
        is dropped) and its size in bytes, or None when the client left."""
        messages, size = [], 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return None
            size += len(message.get("body", b""))
            if keep and size <= self.max_bytes:
                messages.append(message)
            if not message.get("more_body"):
                return messages, size

    async def _refuse(self, scope, receive, send, admitted: bool):
        if admitted:
            response = JSONResponse({"error": self.too_large}, status_code=413, headers={"Connection": "close"})
        else:
            response = JSONResponse({"error": self.busy}, status_code=503, headers={"Retry-After": "2"})
        await response(scope, receive, send)


def create_app(recognizer, decoder, limits: Limits = Limits()):
    from asr.transcribe import transcribe_audio

    app = FastAPI(title="asr", docs_url=None, redoc_url=None)
    gate = _Gate(limits)
    rate = recognizer.features.sample_rate
    max_bytes = int(limits.max_upload_mb * 2**20)
    too_large = f"upload larger than {limits.max_upload_mb:g} MB"
    html = PAGE.read_text()

    @app.get("/", response_class=HTMLResponse)
    def page() -> str:
        return html

    @app.get("/health")
    def health() -> dict:
        return {"status": "ok", "admitted": gate.admitted, **asdict(limits)}

    @app.post("/transcribe")
    async def transcribe(file: UploadFile = File(...)):  # admitted by _Admission
        data = await file.read(max_bytes + 1)
        if len(data) > max_bytes:
            raise HTTPException(413, too_large)
        name = Path(file.filename or "upload").name  # shown in errors only
        try:
            audio = load_audio_bytes(data, name, rate)
        except AudioError as error:
            raise HTTPException(400, str(error)) from None
        seconds = len(audio) / rate
        if seconds > limits.max_audio_seconds:
            raise HTTPException(413, f"{name}: {seconds:.1f} s of audio, more than the "
                                     f"{limits.max_audio_seconds:g} s this service takes")
        async with gate.running:
            result = await asyncio.to_thread(transcribe_audio, recognizer, audio, decoder, path=name)
        return {"text": result.text, "duration": round(seconds, 3),
                "segments": [asdict(s) for s in result.segments if s.text]}

    @app.exception_handler(HTTPException)
    async def one_line(_, error: HTTPException):
        return JSONResponse({"error": str(error.detail)}, status_code=error.status_code)

    busy = f"busy: {limits.workers} transcribing and {limits.queue} waiting; try again shortly"
    # the form's boundaries and headers on top of the file itself
    app.add_middleware(_Admission, gate=gate, max_bytes=max_bytes + 64 * 1024, too_large=too_large, busy=busy)
    app.state.gate = gate
    return app


def serve(recognizer, decoder, host: str = "127.0.0.1", port: int = 8000, limits: Limits = Limits()) -> None:
    import uvicorn

    uvicorn.run(create_app(recognizer, decoder, limits), host=host, port=port, log_level="info")

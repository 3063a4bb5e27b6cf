"""The web page of `asr serve`, driven in headless Chromium: upload an AN4 clip, check the words.

    sudo apt-get install chromium chromium-driver     # Debian's packages
    pip install -e ".[serve,browser]"
    python tools/browser_check.py [--model CKPT] [--clip asr/assets/an4/samples/an417-fjlp-b.flac]

Starts `asr serve` on a free local port, opens its page in headless Chromium (Selenium, with
Debian's chromedriver), chooses the clip in the page's file input, waits for the highlighted
words to appear, and checks that they are the clip's reference transcript (from the `text` file
beside it) and that every word carries its times and confidence. Exits 0 when they are.
"""
from __future__ import annotations

import argparse
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> int:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", help="checkpoint (default: the built-in model)")
    parser.add_argument("--clip", default="asr/assets/an4/samples/an417-fjlp-b.flac")
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    parser.add_argument("--chromedriver", default="/usr/bin/chromedriver")
    args = parser.parse_args()
    clip = Path(args.clip).resolve()
    texts = dict(line.split(" ", 1) for line in (clip.parent / "text").read_text().splitlines())
    expected = texts[clip.stem]
    port = free_port()
    command = [sys.executable, "-m", "asr", "serve", "--port", str(port)] + (["--model", args.model] if args.model else [])
    server = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}/"
    try:
        for _ in range(300):
            try:
                urllib.request.urlopen(url + "health", timeout=1)
                break
            except OSError:
                time.sleep(0.1)
        options = webdriver.ChromeOptions()
        options.binary_location = args.chromium
        for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage"):
            options.add_argument(flag)
        driver = webdriver.Chrome(service=Service(args.chromedriver), options=options)
        try:
            driver.get(url)
            driver.find_element(By.ID, "file").send_keys(str(clip))
            spans = WebDriverWait(driver, 60).until(lambda d: d.find_elements(By.CSS_SELECTOR, "#words span"))
            words = [s.text for s in spans]
            titles = [s.get_attribute("title") for s in spans]
            status = driver.find_element(By.ID, "status").text
        finally:
            driver.quit()
    finally:
        server.terminate()
        server.wait(10)
    print(f"page status: {status}")
    print(f"words shown: {' '.join(words)}")
    print(f"expected:    {expected}")
    ok = " ".join(words) == expected and all("confidence" in t and " s," in t for t in titles)
    print("browser check: " + ("passed" if ok else "FAILED"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

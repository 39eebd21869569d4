import threading, time

n = 0
while True:
    try:
        threading.Thread(target=time.sleep, args=(100,), daemon=True).start()
        n += 1
    except RuntimeError:
        print("threads", n, flush=True)
        time.sleep(100)

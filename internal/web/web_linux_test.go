package web

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	cdplog "github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/network"
	cdpruntime "github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"github.com/runbox-dev/runbox/internal/boxtest"
	"github.com/runbox-dev/runbox/internal/clitest"
)

// chromium is Debian's browser, driven headless by the playground test.
const chromium = "/usr/bin/chromium"

// TestPlayground drives the playground and the API reference of a real
// `runbox serve` (real jail, real boxes) in a headless Chromium, saving a
// screenshot of each step, and checks that no request leaves the server.
func TestPlayground(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("requires root: runbox serve's jail")
	}
	if _, err := os.Stat(chromium); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("CI installs chromium (.ci/run), and %s is missing", chromium)
		}
		t.Skipf("requires chromium at %s (apt-get install chromium)", chromium)
	}
	addr := startServe(t)
	origin := "http://" + addr
	shots := artefacts(t)
	ctx := browser(t)

	var mu sync.Mutex
	var urls, problems []string // requests; errors the page met
	err := chromedp.Listen(ctx, func(ev any) {
		mu.Lock()
		defer mu.Unlock()
		switch e := ev.(type) {
		case *network.EventRequestWillBeSent:
			urls = append(urls, e.Request.URL)
		case *network.EventWebSocketCreated:
			urls = append(urls, e.URL)
		case *network.EventLoadingFailed:
			// A load the page's policy (or anything else) blocked.
			if e.BlockedReason != "" {
				problems = append(problems, fmt.Sprintf("request %s blocked: %s", e.RequestID, e.BlockedReason))
			}
		case *cdplog.EventEntryAdded:
			if e.Entry.Level == cdplog.EntryLevelError {
				problems = append(problems, fmt.Sprintf("%s error: %s (%s)", e.Entry.Source, e.Entry.Text, e.Entry.URL))
			}
		case *cdpruntime.EventExceptionThrown:
			d, what := e.ExceptionDetails, ""
			if d.Exception != nil {
				what = d.Exception.Description
			}
			problems = append(problems, fmt.Sprintf("exception: %s %s (%s:%d)", d.Text, what, d.URL, d.LineNumber))
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	do := func(t *testing.T, actions ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		if err := chromedp.Do(ctx, actions...); err != nil {
			t.Fatal(err)
		}
	}
	eval := func(t *testing.T, js string) {
		t.Helper()
		do(t, chromedp.Evaluate[chromedp.Void](js))
	}
	shot := func(t *testing.T, name string) {
		t.Helper()
		png, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(shots, name+".png"), png, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// until waits for a JavaScript condition of the page; on a timeout
	// it reports the verdict and the console as the page shows them.
	until := func(t *testing.T, cond string) {
		t.Helper()
		if _, err := chromedp.Run(ctx, chromedp.Poll[chromedp.Void](cond, chromedp.WithPollingTimeout(60*time.Second))); err != nil {
			verdict, _ := chromedp.Run(ctx, chromedp.Text(chromedp.ID("verdict")))
			console, _ := chromedp.Run(ctx, chromedp.Text(chromedp.ID("console")))
			t.Fatalf("waiting for %s: %v\nverdict: %s\nconsole: %s", cond, err, verdict, console)
		}
	}
	program := func(t *testing.T, language, text string) {
		t.Helper()
		l, _ := json.Marshal(language)
		p, _ := json.Marshal(text)
		eval(t, fmt.Sprintf(`(() => {
			const s = document.getElementById("language");
			s.value = %s;
			s.dispatchEvent(new Event("change"));
			window.playground.program = %s;
		})()`, l, p))
	}
	console := func(s string) string {
		b, _ := json.Marshal(s)
		return fmt.Sprintf(`document.getElementById("console").textContent.includes(%s)`, b)
	}
	const (
		good = `document.getElementById("verdict").classList.contains("good")`
		bad  = `document.getElementById("verdict").classList.contains("bad")`
	)
	run := func(t *testing.T) {
		t.Helper()
		do(t, chromedp.Click(chromedp.ID("run")))
	}
	ready := chromedp.WaitVisible(chromedp.CSS(`body[data-ready="true"]`))

	do(t, chromedp.Navigate(origin+"/"), ready)
	shot(t, "01-loaded")

	for i, tc := range []struct{ language, program, want string }{
		{"python", "import sys\nprint('hello from python', sys.version_info[0])\n", "hello from python 3"},
		{"c", "#include <stdio.h>\nint main(void) { printf(\"hello from c %d\\n\", 6 * 7); return 0; }\n", "hello from c 42"},
		{"javascript", "console.log(`hello from ${'java' + 'script'}`, [1, 2, 3].map(x => x * 2).join(','));\n", "hello from javascript 2,4,6"},
	} {
		t.Run(tc.language, func(t *testing.T) {
			program(t, tc.language, tc.program)
			run(t)
			until(t, good+" && "+console(tc.want))
			verdict, err := chromedp.Run(ctx, chromedp.Text(chromedp.ID("verdict")))
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(verdict, "ok") || !strings.Contains(verdict, "ms wall") {
				t.Errorf("verdict %q: want ok with its time and memory", verdict)
			}
			shot(t, fmt.Sprintf("%02d-%s", i+2, tc.language))
		})
	}

	t.Run("compile error", func(t *testing.T) {
		program(t, "c", "int main(void) { return missing; }\n")
		run(t)
		until(t, bad+` && document.getElementById("verdict").textContent.includes("compile error") && `+console("missing"))
		shot(t, "05-compile-error")
	})

	t.Run("interactive", func(t *testing.T) {
		program(t, "python", "a = input('first? ')\nprint('got', a)\nb = input('second? ')\nprint('sum', int(a) + int(b))\n")
		run(t)
		until(t, `!document.getElementById("input-line").disabled && `+console("first? "))
		do(t, chromedp.SendKeys(chromedp.ID("input-line"), "2"+kb.Enter))
		until(t, console("got 2"))
		do(t, chromedp.SendKeys(chromedp.ID("input-line"), "3"+kb.Enter))
		until(t, good+" && "+console("sum 5"))
		shot(t, "06-interactive")
	})

	t.Run("stop", func(t *testing.T) {
		program(t, "python", "import time\nprint('sleeping', flush=True)\ntime.sleep(30)\n")
		run(t)
		until(t, console("sleeping"))
		do(t, chromedp.Click(chromedp.ID("stop")))
		until(t, bad+` && document.getElementById("verdict").textContent.includes("stopped") && !document.getElementById("run").disabled`)
	})

	t.Run("files", func(t *testing.T) {
		program(t, "python", "import os\nos.makedirs('out', exist_ok=True)\nopen('out/square.txt', 'w').write('square %d' % (4 * 4))\nprint('written')\n")
		eval(t, `document.getElementById("outputs").value = "out/*.txt"`)
		run(t)
		until(t, good+` && document.querySelector("#files a") !== null`)
		link, err := chromedp.Run(ctx, chromedp.Evaluate[struct{ Href, Download, Text string }](`(a => ({Href: a.href, Download: a.download, Text: a.textContent}))(document.querySelector("#files a"))`))
		want := "data:application/octet-stream;base64," + base64.StdEncoding.EncodeToString([]byte("square 16"))
		if err != nil || link.Href != want || link.Download != "square.txt" || link.Text != "out/square.txt" {
			t.Errorf("returned file link %+v (%v), want %s", link, err, want)
		}
		shot(t, "07-files")
		eval(t, `document.getElementById("outputs").value = ""`)
	})

	t.Run("cases", func(t *testing.T) {
		program(t, "python", "n = int(input())\nprint(n * n)\n")
		do(t, chromedp.Click(chromedp.CSS("#cases-box summary")), chromedp.Click(chromedp.ID("add-case")), chromedp.Click(chromedp.ID("add-case")))
		eval(t, `(() => {
			const rows = document.querySelectorAll("#cases .case");
			rows[0].querySelector(".case-stdin").value = "3";
			rows[0].querySelector(".case-expected").value = "9";
			rows[1].querySelector(".case-stdin").value = "4";
			rows[1].querySelector(".case-expected").value = "15";
		})()`)
		run(t)
		until(t, bad+` && document.getElementById("verdict").textContent.includes("1/2 accepted")`)
		verdicts, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](`[...document.querySelectorAll(".case-verdict")].map(e => e.textContent)`))
		if err != nil || strings.Join(verdicts, ",") != "accepted,wrong answer" {
			t.Errorf("case verdicts %q (%v)", verdicts, err)
		}
		shot(t, "08-cases")
		// No cases for the steps below.
		eval(t, `document.getElementById("cases").replaceChildren()`)
	})

	t.Run("share", func(t *testing.T) {
		program(t, "javascript", "console.log('shared ' + require('fs').readFileSync(0, 'utf8').trim());\n")
		eval(t, `document.getElementById("stdin").value = "über"`)
		do(t, chromedp.Click(chromedp.ID("share")))
		link, err := chromedp.Run(ctx, chromedp.Value(chromedp.ID("share-url")))
		if err != nil || !strings.HasPrefix(link, origin+"/#") {
			t.Fatalf("share link %q (%v)", link, err)
		}
		// A fresh page from the link alone.
		do(t, chromedp.Navigate("about:blank"), chromedp.Navigate(link), ready)
		got, err := chromedp.Run(ctx, chromedp.Evaluate[struct{ Language, Program, Stdin string }](`({
			Language: document.getElementById("language").value,
			Program: window.playground.program,
			Stdin: document.getElementById("stdin").value})`))
		if err != nil || got.Language != "javascript" || !strings.Contains(got.Program, "shared ") || got.Stdin != "über" {
			t.Fatalf("restored %+v (%v)", got, err)
		}
		eval(t, `document.getElementById("interactive").checked = false`)
		run(t)
		until(t, good+" && "+console("shared über"))
		shot(t, "09-shared")
	})

	t.Run("docs", func(t *testing.T) {
		do(t, chromedp.Navigate(origin+"/docs"))
		until(t, `document.querySelector(".swagger-ui .info .title")?.textContent.includes("runbox") &&
			document.querySelectorAll(".opblock").length > 3`)
		shot(t, "10-docs")
	})

	mu.Lock()
	defer mu.Unlock()
	if len(urls) == 0 {
		t.Fatal("no network events seen")
	}
	for _, u := range urls {
		if !strings.HasPrefix(u, origin+"/") && !strings.HasPrefix(u, "ws://"+addr+"/") && !strings.HasPrefix(u, "data:") {
			t.Errorf("request to %s: not the server's origin", u)
		}
	}
	for _, p := range problems {
		t.Errorf("the page met %s", p)
	}
	t.Logf("%d requests checked against %s; screenshots in %s", len(urls), origin, shots)
}

// browser starts a headless Chromium with a fresh profile, removed when
// the test ends, and returns a context of its first tab.
func browser(t *testing.T) context.Context {
	t.Helper()
	profile, err := os.MkdirTemp("", "runbox-chromium-")
	if err != nil {
		t.Fatal(err)
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(chromium),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(profile),
		chromedp.WindowSize(1280, 900),
		// Chromium's own temporary files (org.chromium.Chromium.*) go
		// into the profile, removed with it, not into the host's /tmp.
		chromedp.Env("TMPDIR="+profile),
	)
	ctx, cancel := chromedp.NewContext(actx, chromedp.WithErrorf(t.Logf))
	t.Cleanup(func() {
		cancel()
		cancelAlloc() // waits for the browser to exit
		os.RemoveAll(profile)
	})
	// The first action starts the browser (the network domain is on).
	if err := chromedp.Do(ctx, chromedp.Navigate("about:blank")); err != nil {
		t.Fatalf("start %s: %v", chromium, err)
	}
	return ctx
}

// artefacts is the directory the screenshots go to: $RUNBOX_ARTEFACTS, or
// artefacts/ at the repository's root, kept after the test.
func artefacts(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("RUNBOX_ARTEFACTS")
	if dir == "" {
		_, here, _, _ := runtime.Caller(0)
		dir = filepath.Join(filepath.Dir(here), "..", "..", "artefacts")
	}
	dir = filepath.Join(dir, "playground")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// startServe builds runbox and runbox-init, starts `runbox serve` on a
// free port of 127.0.0.1 and returns its address, read from its
// "listening" log line. The server is stopped with SIGTERM (killed if it
// lingers) when the test ends.
func startServe(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	initBin, err := boxtest.BuildInit(dir)
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "runbox")
	build := exec.Command("go", "build", "-o", bin, "github.com/runbox-dev/runbox/cmd/runbox-server")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build runbox: %v\n%s", err, out)
	}
	cmd := exec.Command(bin, "serve", "--listen", "127.0.0.1:0", "--data-dir", filepath.Join(dir, "data"))
	cmd.Env = append(os.Environ(), "RUNBOX_INIT="+initBin)
	addr, _ := clitest.Serve(t, cmd)
	return addr
}

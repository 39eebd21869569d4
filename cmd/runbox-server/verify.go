package main

import (
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/runbox-dev/runbox/internal/job/sign"
	"github.com/runbox-dev/runbox/internal/units"
)

const (
	verifyUsage   = "runbox verify [--server URL] [--key KEY]... [--keys FILE] [--request FILE] JOB.json"
	defaultServer = "http://127.0.0.1:8080"
	// exitNotVerified: the job's signature or content does not check out,
	// or could not be checked (no key for it, keys not fetched).
	exitNotVerified = 1
	keysTimeout     = 10 * time.Second
	maxKeysBytes    = 1 << 20
	// maxInputBytes bounds JOB.json and --request: far above any job a
	// server answers with (its outputs are bounded by max_response_bytes).
	maxInputBytes = 1 << 30
)

// keyFlag is a repeatable --key: a node's public key in base64.
type keyFlag struct{ keys *[]sign.PublicKey }

func (f keyFlag) String() string { return "" }
func (f keyFlag) Set(s string) error {
	pub, err := base64.StdEncoding.DecodeString(s)
	if err != nil || len(pub) != ed25519.PublicKeySize {
		return fmt.Errorf("want the base64 of a %d-byte Ed25519 public key", ed25519.PublicKeySize)
	}
	*f.keys = append(*f.keys, sign.PublicKey{KeyID: sign.KeyID(pub), Node: "?", Algorithm: sign.Algorithm, PublicKey: s})
	return nil
}

type verifyOptions struct {
	server, keysFile, request, job string
	keys                           []sign.PublicKey
}

func parseVerify(args []string, stderr io.Writer) (*verifyOptions, error) {
	o := &verifyOptions{}
	fset := flag.NewFlagSet("runbox verify", flag.ContinueOnError)
	fset.SetOutput(io.Discard)
	fset.StringVar(&o.server, "server", "", "fetch the keys from this runbox server's /v1/keys, trusting its answer\n(default "+defaultServer+" when neither --key nor --keys is given)")
	fset.Var(keyFlag{&o.keys}, "key", "a node's Ed25519 public key, in base64 (repeatable)")
	fset.StringVar(&o.keysFile, "keys", "", "a saved GET /v1/keys answer")
	fset.StringVar(&o.request, "request", "", "the job's request body, checked against the signed request_sha256")
	if err := fset.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(stderr, "usage: "+verifyUsage+"\n\nJOB.json is a saved GET /v1/jobs/{id} answer (- for stdin).\n\nflags:")
			fset.SetOutput(stderr)
			fset.PrintDefaults()
			return nil, err
		}
		return nil, usageError{err.Error()}
	}
	if fset.NArg() != 1 {
		return nil, usageError{"want one JOB.json (" + verifyUsage + ")"}
	}
	o.job = fset.Arg(0)
	if o.server == "" && o.keysFile == "" && len(o.keys) == 0 {
		o.server = defaultServer
	}
	if u, err := url.Parse(o.server); o.server != "" && (err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "") {
		return nil, usageError{fmt.Sprintf("--server %q: want an http:// or https:// URL", o.server)}
	}
	return o, nil
}

// cmdVerify is `runbox verify`: it checks a finished job's signature and
// that the job says what its node signed. It needs no server when the keys
// are given (--key, --keys).
func cmdVerify(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	o, err := parseVerify(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	var job, request []byte
	if err == nil {
		job, err = readInput(o.job, stdin, maxInputBytes)
	}
	if err == nil && o.request != "" {
		request, err = readInput(o.request, nil, maxInputBytes)
	}
	if err == nil && o.keysFile != "" {
		var keys []sign.PublicKey
		keys, err = readKeys(o.keysFile)
		o.keys = append(o.keys, keys...)
	}
	if err != nil {
		fmt.Fprintln(stderr, "runbox verify:", err)
		return exitUsage
	}
	if o.server != "" {
		keys, err := fetchKeys(o.server)
		if err != nil {
			fmt.Fprintln(stderr, "runbox verify:", err)
			return exitNotVerified
		}
		o.keys = append(o.keys, keys...)
	}

	if err := sign.VerifyJob(job, o.keys, request); err != nil {
		for _, line := range strings.Split(err.Error(), "\n") {
			fmt.Fprintln(stderr, "runbox verify:", line)
		}
		return exitNotVerified
	}
	st, err := statementOf(job)
	if err != nil { // VerifyJob parsed the same statement
		fmt.Fprintln(stderr, "runbox verify:", err)
		return exitInternalError
	}
	fmt.Fprintf(stdout, "ok: job %s signed by %s (node %s)\n", st.JobID, st.KeyID, st.Node)
	return 0
}

// readInput reads a file named on the command line, at most max bytes;
// "-" is stdin when stdin is not nil.
func readInput(name string, stdin io.Reader, max int64) ([]byte, error) {
	r := stdin
	if name != "-" || stdin == nil {
		f, err := os.Open(name)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		r = f
	}
	data, err := io.ReadAll(io.LimitReader(r, max+1))
	if err == nil && int64(len(data)) > max {
		err = fmt.Errorf("%s: more than %s", name, units.FormatSize(max))
	}
	return data, err
}

func readKeys(name string) ([]sign.PublicKey, error) {
	data, err := readInput(name, nil, maxKeysBytes)
	if err != nil {
		return nil, fmt.Errorf("--keys: %w", err)
	}
	keys, err := decodeKeys(data)
	if err != nil {
		return nil, fmt.Errorf("--keys %s: %w", name, err)
	}
	return keys, nil
}

// fetchKeys is GET server/v1/keys.
func fetchKeys(server string) ([]sign.PublicKey, error) {
	ctx, cancel := context.WithTimeout(context.Background(), keysTimeout)
	defer cancel()
	u := strings.TrimSuffix(server, "/") + "/v1/keys"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, fmt.Errorf("get keys: %w", err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("get keys: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("get keys: GET %s: %s", u, resp.Status)
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxKeysBytes+1))
	if err == nil && len(data) > maxKeysBytes {
		err = fmt.Errorf("more than %s", units.FormatSize(maxKeysBytes))
	}
	if err == nil {
		var keys []sign.PublicKey
		if keys, err = decodeKeys(data); err == nil {
			return keys, nil
		}
	}
	return nil, fmt.Errorf("get keys: GET %s: %w", u, err)
}

// decodeKeys reads a GET /v1/keys answer.
func decodeKeys(data []byte) ([]sign.PublicKey, error) {
	var v struct {
		Keys []sign.PublicKey `json:"keys"`
	}
	if err := json.Unmarshal(data, &v); err != nil {
		return nil, err
	}
	if v.Keys == nil {
		return nil, errors.New(`no "keys" list`)
	}
	return v.Keys, nil
}

// statementOf is the statement of a job VerifyJob accepted. Maps, not a
// struct: encoding/json matches a struct's fields in any case, VerifyJob
// reads the exact names.
func statementOf(job []byte) (sign.Statement, error) {
	var top, sig map[string]json.RawMessage
	var text string
	err := json.Unmarshal(job, &top)
	if err == nil {
		err = json.Unmarshal(top["signature"], &sig)
	}
	if err == nil {
		err = json.Unmarshal(sig["statement"], &text)
	}
	if err != nil {
		return sign.Statement{}, fmt.Errorf("read the statement: %w", err)
	}
	return sign.ParseStatement(text)
}

package runner

import (
	"context"
	"sort"
	"strings"

	"github.com/runbox-dev/runbox/internal/env"
	"github.com/runbox-dev/runbox/internal/jail"
)

// ConformanceRequest is an environment's conformance run: its program, a
// test.txt, "stdin" on stdin and the args foo bar baz. It prints OK.
func ConformanceRequest(e *env.Environment) Request {
	names := make([]string, 0, len(e.Conformance))
	for n := range e.Conformance {
		names = append(names, n)
	}
	sort.Strings(names)
	req := Request{Language: e.Name, Main: e.Source, Stdin: []byte("stdin\n"), Args: []string{"foo", "bar", "baz"}}
	for _, n := range names {
		req.Files = append(req.Files, File{Name: n, Content: e.Conformance[n]})
	}
	req.Files = append(req.Files, File{Name: "test.txt", Content: []byte("test\n")})
	return req
}

// VersionRunner runs version commands in boxes, for env.Registry.Detect.
// A version printed on stderr (java -version does) counts too.
func VersionRunner(j Jail) env.VersionRunner { return VersionRunnerWith(j, nil) }

// VersionRunnerWith is VersionRunner that also runs the version commands of
// image environments, on their images.
func VersionRunnerWith(j Jail, images Images) env.VersionRunner {
	return func(ctx context.Context, e *env.Environment, argv []string) (string, error) {
		pl, err := place(ctx, images, e)
		if err != nil {
			return "", err
		}
		defer pl.release()
		res, err := j.Run(ctx, jail.Spec{Argv: argv, Env: pl.envOf(e, nil), Root: pl.root})
		if err != nil {
			return "", err
		}
		if res.Status != jail.StatusOK {
			msg := strings.TrimSpace(res.Message + " " + string(res.Stderr))
			return "", &unavailable{msg}
		}
		if strings.TrimSpace(string(res.Stdout)) == "" {
			return string(res.Stderr), nil
		}
		return string(res.Stdout), nil
	}
}

type unavailable struct{ msg string }

func (u *unavailable) Error() string { return u.msg }

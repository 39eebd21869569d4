package client_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"os"
	"time"

	"github.com/runbox-dev/runbox/client"
)

// Example runs a program, then streams one, against a server started with
// `runbox serve`.
func Example() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c, err := client.New("http://127.0.0.1:8080", client.WithToken(os.Getenv("RUNBOX_KEY")))
	if err != nil {
		log.Fatal(err)
	}
	res, err := c.Run(ctx, client.RunRequest{
		Language: "python",
		Files:    []client.File{{Name: "main.py", Content: "print(input()[::-1])"}},
		Stdin:    "hello",
	})
	var apiErr *client.Error
	if errors.As(err, &apiErr) {
		for _, f := range apiErr.Errors {
			log.Printf("%s: %s", f.Location, f.Message)
		}
		return
	}
	if err != nil {
		log.Fatal(err)
	}
	fmt.Print(res.Run.Stdout) // olleh

	// The same, its output arriving as the program writes it.
	s, err := c.RunStream(ctx, client.RunRequest{Command: []string{"sh", "-c", "echo one; sleep 1; echo two"}})
	if err != nil {
		log.Fatal(err)
	}
	defer s.Close()
	last, err := s.Wait(ctx, os.Stdout, os.Stderr)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("status:", last.Response.Run.Status)
}

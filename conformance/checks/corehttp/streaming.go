package corehttp

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/meshbench/meshbench/conformance"
)

const (
	// streamBound is how long the first part of a streamed body may take
	// to cross the proxy. Loopback takes well under a millisecond; the
	// bound is wide for a loaded machine, and a buffering proxy never
	// delivers the part at all while the other side waits.
	streamBound = 2 * time.Second
	// streamPart is the size of each of the two parts of a streamed body.
	streamPart = 32
	// streamHold bounds how long a backend handler waits for the client's
	// side of a streaming exchange.
	streamHold = 10 * time.Second
)

// streamParts are the two parts of a streamed body.
func streamParts() (string, string) {
	return strings.Repeat("a", streamPart), strings.Repeat("b", streamPart)
}

// chunk encodes s as one HTTP/1.1 chunk.
func chunk(s string) string { return fmt.Sprintf("%x\r\n%s\r\n", len(s), s) }

func streamRequestBody(e *conformance.Env) error {
	be, listen, err := startOne(e, "be-upload")
	if err != nil {
		return err
	}
	part1, part2 := streamParts()
	gotFirst := make(chan struct{}, 1)
	be.Handle("/upload", func(w http.ResponseWriter, r *http.Request) {
		first := make([]byte, streamPart)
		if _, err := io.ReadFull(r.Body, first); err != nil {
			http.Error(w, "reading the first part: "+err.Error(), http.StatusBadRequest)
			return
		}
		select {
		case gotFirst <- struct{}{}:
		default:
		}
		rest, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, "reading the rest: "+err.Error(), http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "text/plain")
		w.Write(append(first, rest...))
	})
	conn, br, err := dial(e, listen)
	if err != nil {
		return err
	}
	conn.SetDeadline(time.Now().Add(streamHold))
	head := "POST /upload HTTP/1.1\r\nHost: app.test\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n"
	if _, err := io.WriteString(conn, head+chunk(part1)); err != nil {
		return fmt.Errorf("writing the request head and first part: %w", err)
	}
	sent := time.Now()
	timer := time.NewTimer(streamBound)
	defer timer.Stop()
	select {
	case <-gotFirst:
		e.Figure("first_part_at_backend", float64(time.Since(sent).Microseconds())/1000, "ms")
	case <-timer.C:
		return fmt.Errorf("the backend had not read the first %d bytes of the request body %v after the client sent them (the client holds the rest back): the proxy does not stream request bodies", streamPart, streamBound)
	case <-e.Context().Done():
		return e.Context().Err()
	}
	if _, err := io.WriteString(conn, chunk(part2)+"0\r\n\r\n"); err != nil {
		return fmt.Errorf("writing the second part: %w", err)
	}
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		return fmt.Errorf("reading the response: %w", err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return fmt.Errorf("reading the response body: %w", err)
	}
	switch {
	case resp.StatusCode != http.StatusOK:
		return fmt.Errorf("POST /upload answered %s, want 200: %q", resp.Status, body)
	case string(body) != part1+part2:
		return fmt.Errorf("the backend read the body as %q, want %q", body, part1+part2)
	}
	return nil
}

func streamResponseBody(e *conformance.Env) error {
	be, listen, err := startOne(e, "be-download")
	if err != nil {
		return err
	}
	part1, part2 := streamParts()
	readFirst := make(chan struct{}, 1)
	be.Handle("/download", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		io.WriteString(w, part1)
		if err := http.NewResponseController(w).Flush(); err != nil {
			return
		}
		select {
		case <-readFirst:
		case <-time.After(streamHold):
			// The response ends short: the client has failed already.
			return
		case <-r.Context().Done():
			return
		}
		io.WriteString(w, part2)
	})
	conn, br, err := dial(e, listen)
	if err != nil {
		return err
	}
	sent := time.Now()
	conn.SetDeadline(sent.Add(streamBound))
	if _, err := io.WriteString(conn, "GET /download HTTP/1.1\r\nHost: app.test\r\n\r\n"); err != nil {
		return fmt.Errorf("writing the request: %w", err)
	}
	late := func(err error, what string) error {
		if errors.Is(err, os.ErrDeadlineExceeded) {
			return fmt.Errorf("%s had not arrived %v after the request was sent, while the backend had written and flushed the first %d bytes and holds the rest until the client reads them: the proxy does not stream responses", what, streamBound, streamPart)
		}
		return fmt.Errorf("reading %s: %w", what, err)
	}
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		return late(err, "the response head")
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET /download answered %s, want 200", resp.Status)
	}
	first := make([]byte, streamPart)
	if _, err := io.ReadFull(resp.Body, first); err != nil {
		return late(err, fmt.Sprintf("the first %d bytes of the body", streamPart))
	}
	e.Figure("first_part_at_client", float64(time.Since(sent).Microseconds())/1000, "ms")
	readFirst <- struct{}{}
	conn.SetDeadline(time.Now().Add(streamHold))
	rest, err := io.ReadAll(resp.Body)
	if err != nil {
		return fmt.Errorf("reading the rest of the body: %w", err)
	}
	if got := string(first) + string(rest); got != part1+part2 {
		return fmt.Errorf("the body arrived as %q, want %q", got, part1+part2)
	}
	return nil
}

package demoapp

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
)

// Client calls the JSON API (api.go) of a gateway or a node, as one user.
// The load generator has its own, which records every call; this one is
// for tools and tests that act as someone in the hall.
type Client struct {
	// Base is the API's origin, e.g. "http://127.0.0.1:8080".
	Base string
	// As is what the requests say they come from (HeaderClient):
	// ClientPage for the hall, "" for nothing.
	As   string
	HTTP *http.Client // http.DefaultClient when nil
}

// Open opens an account. On an answer other than 201, the error names the
// status and the answer's error; status is 0 when no answer came.
func (c Client) Open(ctx context.Context) (Account, int, error) {
	var a Account
	st, err := c.call(ctx, http.MethodPost, "/api/accounts", "", nil, &a)
	if err == nil && st != http.StatusCreated {
		err = fmt.Errorf("demoapp: open an account: HTTP %d", st)
	}
	return a, st, err
}

// Transfer moves money from the account a, whose token it carries.
func (c Client) Transfer(ctx context.Context, a Account, req TransferRequest) (TransferResponse, int, error) {
	var out TransferResponse
	st, err := c.call(ctx, http.MethodPost, "/api/accounts/"+a.ID+"/transfers", a.Token, req, &out)
	return out, st, err
}

// call sends one request and decodes a 2xx answer into out; any other
// answer is returned as its status and an error holding its message.
func (c Client) call(ctx context.Context, method, path, token string, in, out any) (int, error) {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return 0, err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.Base+path, body)
	if err != nil {
		return 0, err
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if c.As != "" {
		req.Header.Set(HeaderClient, c.As)
	}
	hc := c.HTTP
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		return 0, fmt.Errorf("demoapp: %s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return resp.StatusCode, fmt.Errorf("demoapp: %s %s: %w", method, path, err)
	}
	if resp.StatusCode/100 != 2 {
		var er ErrorResponse
		json.Unmarshal(b, &er)
		return resp.StatusCode, fmt.Errorf("demoapp: %s %s: HTTP %d: %s", method, path, resp.StatusCode, er.Error)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			return resp.StatusCode, fmt.Errorf("demoapp: %s %s: the answer: %w", method, path, err)
		}
	}
	return resp.StatusCode, nil
}

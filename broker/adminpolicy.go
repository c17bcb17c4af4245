package broker

import (
	"context"
	"errors"
	"net/http"
	"net/url"

	"github.com/weftmesh/weft/internal/policy"
)

// AdminPathPolicy sets (POST AdminPolicyRequest: AdminPolicyResult) and reads
// (GET ?account=NAME: AdminPolicy) an account's access policy.
const AdminPathPolicy = "/admin/v1/policy"

// AdminPolicyRequest sets an account's access policy from the text of a policy file.
type AdminPolicyRequest struct {
	Account  string `json:"account"`
	Filename string `json:"filename"` // for error messages: FILE:LINE:COL
	Source   string `json:"source"`
}

// AdminPolicyResult says what setting a policy noticed without refusing it.
type AdminPolicyResult struct {
	Warnings []string `json:"warnings,omitempty"`
}

// AdminPolicy is an account's policy as set, or the built-in default.
type AdminPolicy struct {
	Account string `json:"account"`
	Default bool   `json:"default"` // no policy set: allow all
	Source  string `json:"source"`
}

func (b *Broker) adminPolicy(w http.ResponseWriter, r *http.Request) {
	switch r.Method {
	case http.MethodGet:
		b.adminGetPolicy(w, r)
		return
	case http.MethodPost:
	default:
		w.Header().Set("Allow", "GET, POST")
		writeError(w, http.StatusMethodNotAllowed, r.URL.Path+" needs GET or POST, not "+r.Method)
		return
	}
	var req AdminPolicyRequest
	if err := readJSON(w, r, &req); err != nil {
		b.fail(w, r, err)
		return
	}
	if req.Account == "" {
		b.fail(w, r, errorf(http.StatusBadRequest, "account is missing"))
		return
	}
	if req.Filename == "" {
		req.Filename = "policy"
	}
	warnings, err := b.setPolicy(r.Context(), req.Account, req.Filename, []byte(req.Source))
	if err != nil {
		b.fail(w, r, err)
		return
	}
	b.log.Info("access policy set", "account", req.Account, "file", req.Filename, "warnings", len(warnings))
	writeJSON(w, http.StatusOK, AdminPolicyResult{Warnings: warnings})
}

func (b *Broker) adminGetPolicy(w http.ResponseWriter, r *http.Request) {
	account, ok := b.accountParam(w, r)
	if !ok {
		return
	}
	a, err := b.store.AccountByName(r.Context(), account)
	if err != nil {
		b.fail(w, r, err)
		return
	}
	sp, ok, err := b.store.Policy(r.Context(), a.ID)
	if err != nil {
		b.fail(w, r, err)
		return
	}
	if !ok {
		src, err := policy.Default().Marshal()
		if err != nil {
			b.fail(w, r, err)
			return
		}
		writeJSON(w, http.StatusOK, AdminPolicy{Account: account, Default: true, Source: string(src)})
		return
	}
	writeJSON(w, http.StatusOK, AdminPolicy{Account: account, Source: string(sp.Source)})
}

// SetPolicy sets an account's access policy; a policy with an error is refused whole.
func (c *AdminClient) SetPolicy(ctx context.Context, req AdminPolicyRequest) (AdminPolicyResult, error) {
	var res AdminPolicyResult
	err := c.do(ctx, http.MethodPost, AdminPathPolicy, req, &res)
	return res, err
}

// Policy reads an account's access policy.
func (c *AdminClient) Policy(ctx context.Context, account string) (AdminPolicy, error) {
	if account == "" {
		return AdminPolicy{}, errors.New("account is missing")
	}
	var p AdminPolicy
	err := c.do(ctx, http.MethodGet, AdminPathPolicy+"?account="+url.QueryEscape(account), nil, &p)
	return p, err
}

package broker

import (
	"context"
	"net/http"
)

// AdminPathUserRole sets a user's role: POST AdminUserRoleRequest, empty answer.
const AdminPathUserRole = "/admin/v1/users/role"

// AdminUserRoleRequest gives (Admin) or takes away a user's administrator role.
type AdminUserRoleRequest struct {
	Account string `json:"account"`
	Email   string `json:"email"`
	Admin   bool   `json:"admin"`
}

func (b *Broker) adminSetUserRole(w http.ResponseWriter, r *http.Request) {
	var req AdminUserRoleRequest
	if err := readJSON(w, r, &req); err != nil {
		b.fail(w, r, err)
		return
	}
	if req.Account == "" || req.Email == "" {
		b.fail(w, r, errorf(http.StatusBadRequest, "account and email are both needed"))
		return
	}
	if err := b.store.SetUserAdmin(r.Context(), req.Account, req.Email, req.Admin); err != nil {
		b.fail(w, r, err)
		return
	}
	b.log.Info("user role set", "account", req.Account, "email", req.Email, "admin", req.Admin)
	writeJSON(w, http.StatusOK, struct{}{})
}

// SetUserRole makes a user an administrator of their account, or no longer one. It
// applies to the user's account sessions at once.
func (c *AdminClient) SetUserRole(ctx context.Context, req AdminUserRoleRequest) error {
	return c.do(ctx, http.MethodPost, AdminPathUserRole, req, nil)
}

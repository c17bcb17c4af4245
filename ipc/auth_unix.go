//go:build linux || darwin

package ipc

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/user"
	"slices"
	"strconv"
)

// peerCred is who is on the other end of a Unix socket, as the kernel reports it.
type peerCred struct {
	uid  uint32
	gids []uint32 // the groups the kernel reported with the credentials (may be only the primary one)
}

// policy decides which peers may use the API: root, the daemon's own user, and
// members of group weft.
type policy struct {
	selfUID uint32
	// weftGID is the gid of group weft, or "" when there is no such group.
	weftGID string
	// groupsOf lists the gids of the groups the user with uid belongs to.
	groupsOf func(uid uint32) ([]string, error)
}

func (p policy) allow(c peerCred) error {
	if c.uid == 0 || c.uid == p.selfUID {
		return nil
	}
	if p.weftGID == "" {
		return fmt.Errorf("uid %d is not root and there is no group %s", c.uid, GroupName)
	}
	for _, g := range c.gids {
		if strconv.FormatUint(uint64(g), 10) == p.weftGID {
			return nil
		}
	}
	groups, err := p.groupsOf(c.uid)
	if err != nil {
		return fmt.Errorf("uid %d: look up groups: %w", c.uid, err)
	}
	if slices.Contains(groups, p.weftGID) {
		return nil
	}
	return fmt.Errorf("uid %d is not root and not in group %s", c.uid, GroupName)
}

// currentPolicy reads group weft now, so a group created or changed while weftd runs
// takes effect for the next connection.
func currentPolicy() policy {
	p := policy{
		selfUID: uint32(os.Getuid()),
		groupsOf: func(uid uint32) ([]string, error) {
			u, err := user.LookupId(strconv.FormatUint(uint64(uid), 10))
			if err != nil {
				return nil, err
			}
			gids, err := u.GroupIds()
			if err != nil {
				return nil, err
			}
			return append(gids, u.Gid), nil
		},
	}
	if g, err := user.LookupGroup(GroupName); err == nil {
		p.weftGID = g.Gid
	}
	return p
}

func checkPeer(c net.Conn) error {
	uc, ok := c.(*net.UnixConn)
	if !ok {
		return errors.New("not a Unix socket connection")
	}
	cred, err := peerCredentials(uc)
	if err != nil {
		return fmt.Errorf("read peer credentials: %w", err)
	}
	return currentPolicy().allow(cred)
}

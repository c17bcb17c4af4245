package ipc

// pipeSDDL is the security descriptor of weftd's named pipe on Windows (see Listen in
// pipe_windows.go). The DACL is protected (P: nothing inherited) and lists, in order:
//
//	(D;;GA;;;NU)   deny network logons everything (the pipe also refuses remote clients)
//	(A;;GA;;;SY)   allow SYSTEM everything
//	(A;;GA;;;BA)   allow Administrators everything
//	(A;;GRGW;;;IU) allow interactively logged-on users to read and write
//
// Interactive users include remote-desktop sessions, so each connection is checked
// again: only the console session's user, SYSTEM and Administrators get through.
const pipeSDDL = "D:P(D;;GA;;;NU)(A;;GA;;;SY)(A;;GA;;;BA)(A;;GRGW;;;IU)"

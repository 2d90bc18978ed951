//go:build unix && !linux

package local

// leaderHeld is false here: without waitid(WNOWAIT) in golang.org/x/sys/unix
// for this platform, learning that the leader exited reaps it, and the group
// id could in principle be reused before the group is killed. signal checks
// that the group still exists first.
const leaderHeld = false

// waitExit blocks until the leader has exited, and reaps it.
func (g *group) waitExit() { _, _ = g.w.wait(g.cmd) }

// alive reports whether the group has any member; zombies awaiting their
// reaper count, which at worst makes Run wait goneTimeout.
func (g *group) alive() bool { return groupExists(g.pgid) }

/*
 * Failpoints: named places where a test can make the process die as if
 * killed with SIGKILL, to check what survives a crash at exactly that
 * point. The environment variable CONVEYOR_FAILPOINT names the one to
 * fire; with it unset, a failpoint costs a load and a branch.
 */
#ifndef CV_CORE_FAILPOINT_H
#define CV_CORE_FAILPOINT_H

/* Reads CONVEYOR_FAILPOINT; call once at start-up, before any thread starts. */
void cv_failpoint_init(void);

/* Kills the process with SIGKILL when name is the armed failpoint. */
void cv_failpoint(const char *name);

#endif

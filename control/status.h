/*
 * control/status.h: GET /api/v1/status.
 * (Moved from control.c; reworked in the next commit.)
 */
#ifndef MR_CONTROL_STATUS_H
#define MR_CONTROL_STATUS_H

#endif

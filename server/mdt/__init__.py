"""MDT meetings: scheduling, invitations, grants, calendars, conclusions and the summary.

Domain services with no HTTP (the routes are server/api/mdt.py); state in server/store/mdt.py;
who may do what in server/auth/access.py.
"""

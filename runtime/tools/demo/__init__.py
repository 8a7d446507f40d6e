"""``wayout demo``: a newcomer's tour, as a package of small modules.

* ``workload``: the initializer and jobs the demo's children run;
* ``probe``: the supervisor's own records of a running pool (states, deadlines);
* ``timeline``: watches a pool and keeps the story of every child, job and fault;
* ``scenes``: the scripted chaos played against a real pool;
* ``views``: the live ``rich`` view and the plain line printer;
* ``modelcheck``: the model-check section (the bug zoo and wayout's own core);
* ``summary``: the closing table and the verdict.

Counting processes and descriptors before and after is ``runtime.tools.leaks``.
"""

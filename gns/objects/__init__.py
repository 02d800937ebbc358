"""Rigid-object scenes, the object domain (``docs/objects.md``).

- :mod:`gns.objects.state`: :class:`ObjectState`, windows of poses and actions, attributes, springs.
- :mod:`gns.objects.geometry`: shapes in torch (rounded convex polygons): wall gaps, pair separation, touching.
- :mod:`gns.objects.features`: node and edge features, all-pairs edges.
- :mod:`gns.objects.integrate`: second-order integration of positions and angles, beside its inverse.
- :mod:`gns.objects.simulator`: :class:`ObjectSimulator`, the learned simulator on the shared network.
- :mod:`gns.objects.windows`, :mod:`gns.objects.task`, :mod:`gns.objects.domain`: data, training, the domain table.
- :mod:`gns.objects.evaluate`: errors, energy, the box, collision-event agreement, baselines.
- :mod:`gns.objects.video`, :mod:`gns.objects.viz`: video of scenes; rollout files animated.
- :mod:`gns.objects.plan`: model-predictive control: push a target object into a goal region (on :mod:`gns.plan`).
"""

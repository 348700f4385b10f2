import paho.mqtt.client as mqtt

from simulators.brokers import Mosquitto


def test_mosquitto_fixture_carries_a_retained_message_and_survives_restart(mosquitto: Mosquitto):
    got = []
    pub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv311)
    pub.connect("127.0.0.1", mosquitto.port)
    pub.loop_start()
    pub.publish("t/x", b"hello", qos=1, retain=True).wait_for_publish(5)
    pub.loop_stop()
    pub.disconnect()
    sub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv311)
    sub.on_message = lambda c, u, msg: got.append(msg.payload)
    sub.connect("127.0.0.1", mosquitto.port)
    sub.subscribe("t/#", qos=1)
    for _ in range(50):
        sub.loop(0.05)
        if got:
            break
    sub.disconnect()
    assert got == [b"hello"]
    port = mosquitto.port
    mosquitto.restart()
    assert mosquitto.port == port and mosquitto.proc.poll() is None
